-- wrk script for bench.sh's paced rows: each connection waits BENCH_THINK_MS
-- (default 5) between a response and its next request, so the load stays below
-- capacity and the latency measured is service time, not queueing.
-- wrk starts a request's clock when it is written, so the think time is not counted.
local think = tonumber(os.getenv("BENCH_THINK_MS") or "5")

function delay()
    return think
end
