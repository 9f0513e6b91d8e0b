-- Shared by the wrk scripts of bench/run: reading the files the harness writes, and one
-- machine-readable result line (exact percentiles from wrk's histogram) when a run ends.
local common = {}

-- Every non-empty line of the file `path` (a file the harness wrote), as a list.
function common.lines(path)
  assert(path, "missing file path (an environment variable of bench/run)")
  local lines = {}
  for line in io.lines(path) do
    if line ~= "" then lines[#lines + 1] = line end
  end
  assert(#lines > 0, "no lines in " .. path)
  return lines
end

-- A seed that differs between wrk threads (each thread has its own Lua state).
function common.seed(offset)
  math.randomseed(os.time() * 1000 + (offset or 0) * 7919 + math.floor(os.clock() * 1e6))
end

-- The `done` callback: one `BENCH key=value ...` line that bench/run parses. Latencies in us.
-- `status` counts responses with status >= 400 (wrk's own rule); the others are socket errors.
function common.done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d "
      .. "connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end

return common
