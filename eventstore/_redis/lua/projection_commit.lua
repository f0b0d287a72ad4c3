-- Commit one page of a projection: its read model writes and its checkpoint, in one
-- atomic step. The checkpoint only moves past the writes that Redis applied: when Redis
-- refuses a write (e.g. WRONGTYPE), the commands after it are not run and the checkpoint
-- stops right before the event that queued it, in the same step, so no crash can leave
-- it past an event whose writes failed.
--
-- KEYS[1]  the version's lease key           {ns}:rm:<name>:v<version>:lease
-- KEYS[2]  the partition's checkpoints hash  {ns:pN}:checkpoints
-- KEYS[3]  the version's last error          {ns}:rm:<name>:v<version>:error
--
-- ARGV[1]  this runner's lease token
-- ARGV[2]  the checkpoint field
-- ARGV[3]  the checkpoint the page starts from (what the runner last committed)
-- ARGV[4]  the checkpoint to commit
-- ARGV[5]  "1" to delete the last error with it (the commit gets past the failed event)
-- ARGV[6]  the number of writes, then for each: its argument count, the checkpoint
--          before the event that queued it, and its arguments
--
-- The writes' keys are the read model's own (not declared in KEYS: a handler writes
-- whatever keys it likes); on a cluster they share the projection's slot.
--
-- Reply: {"ok"} | {"lost"} (another runner holds the lease: nothing written)
--        | {"refused", index (1-based), error} (writes before it applied, checkpoint
--          set before the event that queued it)
--        | {"moved", checkpoint} (the stored checkpoint is neither the start nor the
--          target: nothing written)

-- unpack() takes at most this many values (Lua's C stack), so a longer write is refused
-- before anything of it runs, with a message saying why.
local MAX_ARGS = 7900

if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return {'lost'}
end
local stored = redis.call('HGET', KEYS[2], ARGV[2])
local start, target = ARGV[3], ARGV[4]
if stored == target and start ~= target then
  return {'ok'} -- this commit already applied: a resend after its reply was lost
end
if (stored or '0') ~= start then
  return {'moved', stored or '0'}
end

local count, at = tonumber(ARGV[6]), 7
for index = 1, count do
  local nargs, before = tonumber(ARGV[at]), ARGV[at + 1]
  local reply
  if nargs > MAX_ARGS then
    reply = {err = string.format('a write of %d arguments is too long for one commit ' ..
      '(at most %d): split it', nargs, MAX_ARGS)}
  else
    reply = redis.pcall(unpack(ARGV, at + 2, at + 1 + nargs))
  end
  if type(reply) == 'table' and reply.err then
    redis.call('HSET', KEYS[2], ARGV[2], before)
    return {'refused', index, reply.err}
  end
  at = at + 2 + nargs
end
redis.call('HSET', KEYS[2], ARGV[2], target)
if ARGV[5] == '1' then
  redis.call('DEL', KEYS[3])
end
return {'ok'}
