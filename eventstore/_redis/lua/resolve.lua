-- Resolve a page of partition log pointers to the events they point at, in one call.
--
-- KEYS[1..k]  the distinct aggregate streams the page points into (one partition, one slot)
--
-- ARGV        runs of pointers, three values each: key index (1-based into KEYS),
--             first version, count (consecutive versions of that stream)
--
-- Reply: one item per run, in order: the XRANGE entries of that run (fewer than count
-- if pointers dangle: the caller reports the missing versions).

-- numbers leave the script only through this: Lua's own formatting (tostring, ..)
-- turns integers above 1e14 into exponent form; %d is exact up to 2^53
local function int(x) return string.format('%d', x) end
local out = {}
for i = 1, #ARGV, 3 do
  local key = KEYS[tonumber(ARGV[i])]
  local first = tonumber(ARGV[i + 1])
  local last = first + tonumber(ARGV[i + 2]) - 1
  out[#out + 1] = redis.call('XRANGE', key, '0-' .. int(first), '0-' .. int(last))
end
return out
