-- Refresh-grant load for wrk: each connection holds its own refresh tokens and swaps in the
-- rotated one from every response, so the server sees a legitimate rotation chain per token.
-- An answer counts as good only if it is 200 with a new access token and a new refresh token
-- that differs from the one presented (rotation); anything else is counted as bad.
-- Reads TOKENS_FILE (one refresh token per line), CLIENT_AUTH (Basic credentials, base64),
-- TOKEN_PATH and THREADS from the environment.
dofile(os.getenv("WRK_COMMON"))

local tokens = {}
local next_index = 1

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
  if status ~= 200 then count("bad_status") return end
  local rotated = string.match(body, '"refresh_token"%s*:%s*"([^"]+)"')
  local access = string.match(body, '"access_token"%s*:%s*"([^"]+)"')
  if current and rotated and access and rotated ~= tokens[current] then
    tokens[current] = rotated
    count("ok")
  else
    count("bad_body")
  end
end
