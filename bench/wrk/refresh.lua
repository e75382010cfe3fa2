-- Refresh-grant load for wrk: each connection holds its own refresh token and swaps in the
-- rotated one from every response, so the server sees a legitimate rotation chain per token.
-- Reads TOKENS_FILE (one refresh token per line), CLIENT_AUTH (Basic credentials, base64)
-- and TOKEN_PATH from the environment.
local tokens = {}
local next_index = 1
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end

function init(args)
  local i = 0
  for line in io.lines(os.getenv("TOKENS_FILE")) do
    i = i + 1
    -- threads take disjoint slices of the token list
    if (i % tonumber(os.getenv("THREADS") or "1")) == (id - 1) then tokens[#tokens + 1] = line end
  end
  path = os.getenv("TOKEN_PATH")
  auth = "Basic " .. os.getenv("CLIENT_AUTH")
  current = nil
end

function request()
  current = next_index
  next_index = next_index % #tokens + 1
  local body = "grant_type=refresh_token&refresh_token=" .. tokens[current]
  return wrk.format("POST", path, {["Content-Type"] = "application/x-www-form-urlencoded", ["Authorization"] = auth}, body)
end

function response(status, headers, body)
  if status == 200 and current then
    local rotated = string.match(body, '"refresh_token"%s*:%s*"([^"]+)"')
    if rotated then tokens[current] = rotated end
  end
end
