-- wrk script for bench.sh's paced rows: each connection waits a random think
-- time (exponential, mean BENCH_THINK_MS, default 5 ms) between a response and
-- its next request.  The load stays below capacity, and random think times keep
-- the connections from falling into step (a fixed delay makes them arrive in
-- bursts, so p99 would measure the burst, not the proxy).  wrk starts a
-- request's clock when it writes it, so think time is not counted.
local mean = tonumber(os.getenv("BENCH_THINK_MS") or "5")

function init(args)
    -- One Lua state per wrk thread: seed each differently.
    math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16))
end

function delay()
    return math.floor(-mean * math.log(1 - math.random()) + 0.5)
end
