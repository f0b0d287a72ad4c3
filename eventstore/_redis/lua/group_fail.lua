-- Record a failed delivery: once the entry has been delivered often enough, move it to
-- the dead-letter stream and acknowledge it, atomically (nothing is lost between the two).
--
-- KEYS[1]  the stream the entry was read from: {ns:pN}:log or {ns:pN}:retry:<group>
-- KEYS[2]  the group's dead-letter stream      {ns:pN}:dlq:<group>
--
-- ARGV[1]  group name
-- ARGV[2]  consumer name (it must still own the entry)
-- ARGV[3]  entry id
-- ARGV[4]  threshold: park the entry when its delivery count is >= this
-- ARGV[5]  "1" to delete the entry once acknowledged (retry streams), "0" to keep it (logs)
-- ARGV[6..] name/value pairs for the dead-letter entry (pointer and error fields)
--
-- The delivery count is the entry's own, from XPENDING's extended form: never a
-- consumer's total pending count, which would park healthy entries of slow consumers.
--
-- Reply: {"dead", deliveries, dead-letter entry id} | {"retry", deliveries}
--        | {"lost", 0}  (the entry is no longer pending for this consumer)

local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #pending == 0 or pending[1][2] ~= ARGV[2] then
  return {'lost', 0}
end
local deliveries = tonumber(pending[1][4])
if deliveries < tonumber(ARGV[4]) then
  return {'retry', deliveries}
end
local fields = {}
for i = 6, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
for _, pair in ipairs({{'deliveries', string.format('%d', deliveries)}, {'source', ARGV[3]}}) do
  fields[#fields + 1] = pair[1]
  fields[#fields + 1] = pair[2]
end
local id = redis.call('XADD', KEYS[2], '*', unpack(fields))
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
if ARGV[5] == '1' then
  redis.call('XDEL', KEYS[1], ARGV[3])
end
return {'dead', deliveries, id}
