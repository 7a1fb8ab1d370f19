-- wrk script: every request is `POST /events` with one JSON event, the
-- shape the events API accepts. Used by scripts/bench-events-api.sh:
--
--   wrk -t2 -c32 -d20s --latency -s scripts/bench/post-events.lua http://127.0.0.1:8090/events
--
-- Only the wrk table is set, with no request() or response() function: wrk
-- then formats the request once and sends the same bytes every time, and
-- skips parsing responses, so the load generator spends its (shared) CPU on
-- sending requests rather than on Lua.
wrk.method = "POST"
wrk.path = "/events" -- whatever path the URL on the command line has
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"userId":"u1","type":"purchase","data":{"amount":99.9}}'
