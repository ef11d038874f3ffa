-- wrk script of `make loadtest` (scripts/loadtest.sh): GET /v1/recommend for the users listed one
-- per line in $LOADTEST_USERS, in turn, with k = $LOADTEST_K and alpha = $LOADTEST_ALPHA.
local users, i = {}, 0
local k = os.getenv("LOADTEST_K") or "10"
local alpha = os.getenv("LOADTEST_ALPHA") or "0"

local function encode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

for line in io.lines(os.getenv("LOADTEST_USERS")) do
  if #line > 0 then users[#users + 1] = encode(line) end
end

request = function()
  i = i + 1
  return wrk.format("GET", "/v1/recommend?user=" .. users[(i % #users) + 1] .. "&k=" .. k .. "&alpha=" .. alpha)
end
