-- POST /api/auth/local for many users in turn. Arguments: a file with one username per line, and the
-- password they share.
local users = {}
local password
local i = 0

function init(args)
  for line in io.lines(args[1]) do users[#users + 1] = line end
  password = args[2]
  i = math.random(#users)
end

function request()
  i = i % #users + 1
  local body = '{"identifier":"' .. users[i] .. '","password":"' .. password .. '"}'
  return wrk.format("POST", "/api/auth/local", { ["Content-Type"] = "application/json" }, body)
end
