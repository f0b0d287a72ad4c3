-- Renew or release the entries a worker holds but has not handled yet.
--
-- KEYS[1]  the stream the entries were read from ({ns:pN}:log or {ns:pN}:retry:<group>)
--
-- ARGV[1]  group name
-- ARGV[2]  consumer name: only entries it still owns are touched
-- ARGV[3]  "renew" | "release"
-- ARGV[4]  idle time (ms) given to released entries, so any worker claims them at once
-- ARGV[5..] entry ids
--
-- renew:   reset the idle time (XCLAIM JUSTID keeps the delivery count), so a batch
--          that takes a while is not claimed by other workers while it waits its turn.
-- release: hand entries back untried on shutdown: their delivery count goes down by one,
--          since that delivery never reached the handler.
-- The owner check and the XCLAIM are one atomic step: an entry another worker has
-- claimed in the meantime is left alone (XCLAIM alone would steal it back).
--
-- Reply: the ids still owned (renewed or released); the caller drops the others.

local out = {}
for i = 5, #ARGV do
  local id = ARGV[i]
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
  if #pending > 0 and pending[1][2] == ARGV[2] then
    if ARGV[3] == 'renew' then
      redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id, 'JUSTID')
    else
      local count = math.max(tonumber(pending[1][4]) - 1, 0)
      redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id,
        'IDLE', ARGV[4], 'RETRYCOUNT', string.format('%d', count), 'JUSTID')
    end
    out[#out + 1] = id
  end
end
return out
