-- Shared by the wrk scripts: every response is judged by its body, not its status alone, and
-- the counts are printed by done() as one line that bench/token_endpoints.py reads:
--   LANYARD_CHECKS {"ok": N, "bad_status": N, "bad_body": N}
-- A run with any bad answer is a failed run, never a throughput.
local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
  thread:set("id", #threads)
end

checks = { ok = 0, bad_status = 0, bad_body = 0 }

function count(kind)
  checks[kind] = checks[kind] + 1
end

function done(summary, latency, requests)
  local ok, bad_status, bad_body = 0, 0, 0
  for _, thread in ipairs(threads) do
    local c = thread:get("checks")
    ok = ok + c.ok
    bad_status = bad_status + c.bad_status
    bad_body = bad_body + c.bad_body
  end
  io.write(string.format('LANYARD_CHECKS {"ok": %d, "bad_status": %d, "bad_body": %d}\n', ok, bad_status, bad_body))
end
