"""posos-intent API: the trained intent model served over HTTP (Litestar, run by uvicorn).

    serve    the entry point (``python -m api.serve``): HOST, PORT, WORKERS, port check, graceful stop
    app      the Litestar application: routes, validation, JSON errors
    service  the served model (loaded once, checked against its card) and the scheduler that feeds it
    settings every limit the API enforces and the settings read from the environment
    security malformed paths and oversized headers refused at the edge; security headers
    logs     private-by-default access log, request ids, text or JSON lines
    metrics  Prometheus metrics at ``/metrics``
    static   the web page served at ``/`` and the offline Swagger page
"""
