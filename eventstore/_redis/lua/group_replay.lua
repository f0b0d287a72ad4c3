-- Move dead letters back into processing: re-add their pointers to the group's retry
-- stream (which the group's workers read next to the log) and delete them, atomically.
--
-- KEYS[1]  the group's dead-letter stream {ns:pN}:dlq:<group>
-- KEYS[2]  the group's retry stream       {ns:pN}:retry:<group>
--
-- ARGV[1..] dead-letter entry ids (ids that no longer exist are skipped)
--
-- Reply: how many were replayed.

local POINTER = {k = true, v = true, t = true, a = true, p = true}
local replayed = 0
for i = 1, #ARGV do
  local found = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
  if #found > 0 then
    local fields, pointer = found[1][2], {}
    for j = 1, #fields, 2 do
      if POINTER[fields[j]] then
        pointer[#pointer + 1] = fields[j]
        pointer[#pointer + 1] = fields[j + 1]
      end
    end
    redis.call('XADD', KEYS[2], '*', unpack(pointer))
    redis.call('XDEL', KEYS[1], ARGV[i])
    replayed = replayed + 1
  end
end
return replayed
