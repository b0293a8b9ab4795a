-- POST /api/auth/refresh, each request with a refresh token nobody has used yet: every answer's new
-- token goes back into the thread's pool, so a pool as large as the thread's connections never runs
-- dry. Arguments: a file with one refresh token per line (of distinct sessions), and the thread count;
-- each thread takes every n-th line so no two threads hold the same token.
local pool = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end

function init(args)
  local n, k = tonumber(args[2]), 0
  for line in io.lines(args[1]) do
    if k % n == tid then pool[#pool + 1] = line end
    k = k + 1
  end
end

function request()
  local token = table.remove(pool) or "pool-exhausted"
  return wrk.format("POST", "/api/auth/refresh", { ["Content-Type"] = "application/json" },
    '{"refreshToken":"' .. token .. '"}')
end

function response(status, headers, body)
  local token = body:match('"refreshToken":"([^"]+)"')
  if token then pool[#pool + 1] = token end
end
