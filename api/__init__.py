"""posos-intent API: the trained intent model served over HTTP (Litestar, run by uvicorn).

    app     the Litestar application: routes, validation, JSON errors (``uvicorn api.app:app --port 4002``)
    service the served model (loaded once, checked against its card) and the micro-batcher
    static  the web page served at ``/``
"""
