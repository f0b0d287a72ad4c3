-- Write a snapshot outside an append, only if it is newer than the stored one.
--
-- KEYS[1]  snapshot hash      {ns:pN}:s:<type>:<id>
-- KEYS[2]  aggregate stream   {ns:pN}:a:<type>:<id>
--
-- ARGV[1]  snapshot version
-- ARGV[2]  schema fingerprint
-- ARGV[3]  state (JSON object)
-- ARGV[4]  time (ms)
--
-- Reply: 1 written, 0 not newer than the stored one, -1 beyond the stream's version

local version = tonumber(ARGV[1])
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
local current = 0
if #last > 0 then current = tonumber(string.match(last[1][1], '^0%-(%d+)$') or 0) end
if version > current then return -1 end
local existing = redis.call('HMGET', KEYS[1], 'v', 'f')
-- a snapshot of another shape is replaced even if newer: it is useless to this class
-- so is one whose version is not a plain integer (loads skip it as invalid): overwrite it
local stored = existing[1] and string.match(existing[1], '^%d+$') and tonumber(existing[1])
if stored and stored >= version and existing[2] == ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'v', string.format('%d', version), 'f', ARGV[2], 's', ARGV[3], 'ts', ARGV[4])
return 1
