-- Record why a projection version stopped, if this runner still holds its lease.
--
-- KEYS[1]  the version's lease key
-- KEYS[2]  the version's last error (hash)
-- KEYS[3]  the hash holding the checkpoint of the failed event's partition
--
-- ARGV[1]  this runner's lease token
-- ARGV[2]  the checkpoint field in KEYS[3]
-- ARGV[3..] the failure's field/value pairs
--
-- A version that failed on its first event has no checkpoint yet: it is registered at 0,
-- so status and list show it (and log trims keep what it still needs).
--
-- Reply: {"ok"} | {"lost"} (another runner holds the lease, or none: nothing written)

if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return {'lost'}
end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], unpack(ARGV, 3))
redis.call('HSETNX', KEYS[3], ARGV[2], '0')
return {'ok'}
