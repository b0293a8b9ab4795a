-- GET the URL's path with the access tokens of many users, round robin, starting at a random one per
-- thread. Argument: a file with one token per line.
local tokens = {}
local i = 0

function init(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  i = math.random(#tokens)
end

function request()
  i = i % #tokens + 1
  return wrk.format("GET", nil, { ["Authorization"] = "Bearer " .. tokens[i] })
end
