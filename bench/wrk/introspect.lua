-- Introspection load for wrk: cycles through ACCESS_FILE (one access token per line, each one
-- live) with client authentication CLIENT_AUTH (base64 Basic credentials) at INTROSPECT_PATH.
-- An answer counts as good only if it is 200 and says "active": true: a cheap "inactive"
-- answer for a token that should be live is an error, not throughput.
dofile(os.getenv("WRK_COMMON"))

local tokens = {}
local n = 0

function init(args)
  for line in io.lines(os.getenv("ACCESS_FILE")) do tokens[#tokens + 1] = line end
  path = os.getenv("INTROSPECT_PATH")
  auth = "Basic " .. os.getenv("CLIENT_AUTH")
end

function request()
  n = n % #tokens + 1
  return wrk.format("POST", path, {["Content-Type"] = "application/x-www-form-urlencoded", ["Authorization"] = auth}, "token=" .. tokens[n])
end

function response(status, headers, body)
  if status ~= 200 then count("bad_status") return end
  if string.match(body, '"active"%s*:%s*true') then count("ok") else count("bad_body") end
end
