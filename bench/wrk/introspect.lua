-- Introspection load for wrk: cycles through ACCESS_FILE (one access token per line) with
-- client authentication CLIENT_AUTH (base64 Basic credentials) at INTROSPECT_PATH.
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
