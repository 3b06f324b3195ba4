"""posos-intent API: the trained intent model served over HTTP (Litestar, run by uvicorn).

    serve    the entry point (``python -m api.serve``): HOST, PORT, WORKERS, the socket, then the supervisor
    supervisor  worker processes on the shared socket: replacement, reloads (SIGHUP), drain (SIGTERM)
    worker   one supervised uvicorn server and its channel to the supervisor
    versions private copies of each model version and the pointer to the one in service
    registry the versions a process holds and which one answers a request (X-Model-Version)
    reload   ``python -m api.reload`` (``make reload``): SIGHUP to the server on PORT
    app      the Litestar application: assembles routes, dependencies, error handlers; start-up, HEAD, drain
    routes   what each route answers, given the registry and the settings by dependency injection (Provide)
    schemas  the request and response bodies besides the answer: a question, BatchRequest, BatchResponse, Health
    openapi  what the OpenAPI document adds to Litestar's: documented errors, BatchRequest's constraints, Retry-After
    errors   the domain errors and how every failure becomes one JSON error shape (every exception handler)
    batcher  the scheduler: micro-batches of single questions, batches in chunks
    disconnect  a client gone: the batch it asked for stops at its next chunk
    service  the served model: loaded once, checked against its card, predicting
    answers  the answer to one question (Prediction) and how it is built from the probabilities
    settings every limit the API enforces and the settings read from the environment
    protocol uvicorn's HTTP protocol with the edge limits: head size and read timeouts, refusals as JSON
    security malformed paths and oversized headers refused at the edge; security headers
    logs     private-by-default access log, request ids, text or JSON lines
    metrics  Prometheus metrics at ``/metrics``: requests, answers, the scheduler, the embedding cache
    live_metrics  what ``/metrics`` builds at scrape time: the version in service, each live process

The web page served at ``/`` and the offline Swagger page are files in ``static/``.
"""
