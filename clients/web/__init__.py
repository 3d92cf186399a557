"""The web console (`lonja web`, and part of `lonja up`): a live page over the name server and the HTTP/JSON
API it is built on.

`operations` does the work with lonja's client (no web framework); `app` serves it over HTTP with Starlette,
`feed` follows the name server's change log for the pages, `server` runs it all on uvicorn. This package
imports none of them: the `lonja` command's parser imports only `cli`, which needs no web framework.
"""
