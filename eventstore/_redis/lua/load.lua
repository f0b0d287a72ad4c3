-- Load an aggregate in one round trip: a valid snapshot plus the events after it.
--
-- KEYS[1]  aggregate stream   {ns:pN}:a:<type>:<id>
-- KEYS[2]  snapshot hash      {ns:pN}:s:<type>:<id>
--
-- ARGV[1]  schema fingerprint the caller can load ("" = ignore snapshots)
-- ARGV[2]  version to load up to (0 = latest)
--
-- Reply: {current_version, snapshot_version (0 = none used), snapshot_state or "",
--         snapshot_skipped_reason or "", entries}
-- current_version is -1 when the last entry id is not 0-<version> (not written by us).
-- where entries are XRANGE entries after the snapshot up to the version asked for.

local current = 0
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #last > 0 then current = tonumber(string.match(last[1][1], '^0%-(%d+)$') or -1) end
if current < 0 then return {-1, 0, '', '', {}} end  -- not our entry ids: the caller raises

local upto = tonumber(ARGV[2])
if upto == 0 or upto > current then upto = current end

local snap_version, snap_state, skipped = 0, '', ''
if ARGV[1] ~= '' and current > 0 then
  local snap = redis.call('HMGET', KEYS[2], 'v', 'f', 's')
  if snap[1] then
    local v = tonumber(snap[1])
    if snap[2] ~= ARGV[1] then
      skipped = 'fingerprint'
    elseif v == nil or v > upto then
      skipped = 'newer'
    else
      snap_version, snap_state = v, snap[3] or ''
    end
  end
end

local entries = {}
if upto > snap_version then
  entries = redis.call('XRANGE', KEYS[1], '0-' .. (snap_version + 1), '0-' .. upto)
end
return {current, snap_version, snap_state, skipped, entries}
