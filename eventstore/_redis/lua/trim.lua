-- Compute a partition log's safe trim point and optionally trim the log up to it.
--
-- KEYS[1]  partition log           {ns:pN}:log
-- KEYS[2]  registered checkpoints  {ns:pN}:ckpt  (name -> last processed position)
-- KEYS[3]  partition position      {ns:pN}:pos
--
-- ARGV[1]  "trim" to trim, anything else to only compute
-- ARGV[2]  trim no further than this position (0: as far as is safe)
--
-- The safe point is the lowest position still needed: for every consumer group the
-- oldest pending entry and the first undelivered one (last delivered + 1), for every
-- registered checkpoint the position after it; last position + 1 when nothing needs
-- anything. Entries strictly below the point can go (XTRIM MINID keeps the point).
-- Computing and trimming in one script means no group or checkpoint can move back
-- under the point in between.
--
-- Reply: {safe point, trimmed up to (exclusive), entries removed}

local function position(id)
  return tonumber(string.match(id, '^0%-(%d+)$') or '0')
end

local point = tonumber(redis.call('GET', KEYS[3]) or '0') + 1
if redis.call('EXISTS', KEYS[1]) == 1 then
  for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    local info = {}
    for j = 1, #group, 2 do
      info[group[j]] = group[j + 1]
    end
    point = math.min(point, position(info['last-delivered-id']) + 1)
    local summary = redis.call('XPENDING', KEYS[1], info['name'])
    if tonumber(summary[1]) > 0 then
      point = math.min(point, position(summary[2]))
    end
  end
end
local checkpoints = redis.call('HGETALL', KEYS[2])
for j = 2, #checkpoints, 2 do
  point = math.min(point, (tonumber(checkpoints[j]) or 0) + 1)
end

local upto = point
local limit = tonumber(ARGV[2])
if limit > 0 then
  upto = math.min(upto, limit)
end
local removed = 0
if ARGV[1] == 'trim' then
  removed = redis.call('XTRIM', KEYS[1], 'MINID', '0-' .. string.format('%d', upto))
end
return {point, upto, removed}
