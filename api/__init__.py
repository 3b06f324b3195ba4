"""posos-intent API: the trained intent model served over HTTP (Litestar, run by uvicorn).

    app     the Litestar application (``uvicorn api.app:app --port 4002``)
    client  ``make test``: predict ``data/input_test.csv`` through the API
    static  the web page served at ``/``
"""
