--- Formatting of costs, tokens, durations and states, shared by the views.
local present = require('canopy.state').present

local M = {}

--- `nil` cost means a price is unknown: never show it as $0.
---@param usd number|nil
---@return string
function M.cost(usd)
  if not present(usd) then return '$?' end
  if usd < 10 then return ('$%.2f'):format(usd) end
  return ('$%.0f'):format(usd)
end

---@param n number|nil
---@return string
function M.tokens(n)
  if not present(n) then return '0' end
  if n >= 1e6 then return ('%.1fM'):format(n / 1e6) end
  if n >= 1e3 then return ('%.1fk'):format(n / 1e3) end
  return tostring(math.floor(n))
end

---@param ms number|nil
---@return string
function M.duration(ms)
  if not present(ms) then return '0s' end
  local s = math.floor(ms / 1000)
  if s < 60 then return s .. 's' end
  if s < 3600 then return ('%dm%02ds'):format(s / 60, s % 60) end
  return ('%dh%02dm'):format(s / 3600, (s % 3600) / 60)
end

---@param s canopy.Session
---@return string
function M.context(s)
  local c = s.usage and s.usage.context
  if not present(c) or not present(c.window) or c.window == 0 then return '-' end
  return ('%d%%'):format(math.floor((c.percent or 0) + 0.5))
end

---@param s canopy.Session
---@return string
function M.state(s)
  local st = s.state
  local text = st.kind
  if present(st.tool) and (st.kind == 'tool' or st.kind == 'waiting_permission') then
    text = ('%s(%s)'):format(st.kind, st.tool)
  end
  -- A remote host's session whose link dropped: the last state seen, maybe out of date.
  if present(s.stale_since) then text = text .. ' (stale)' end
  return text
end

---@param s canopy.Session
---@return string
function M.issue(s)
  if present(s.task) and present(s.task.id) then return s.task.id end
  return ''
end

--- `2 comments` pending review comments (not yet sent to the agent), or ''.
---@param s canopy.Session
---@return string
function M.comments(s)
  local n = present(s.comments) and #s.comments or 0
  if n == 0 then return '' end
  return ('%d comment%s'):format(n, n == 1 and '' or 's')
end

--- The session's pull request (`PR #12`) or merge request (`MR !12`), with its state
--- unless open; '' when it has none (or the host predates them).
---@param s canopy.Session
---@return string
function M.pr(s)
  local pr = s.pr
  if not present(pr) or not present(pr.number) then return '' end
  local text = pr.provider == 'gitlab' and ('MR !%d'):format(pr.number) or ('PR #%d'):format(pr.number)
  if present(pr.state) and pr.state ~= 'open' then text = text .. ' ' .. pr.state end
  return text
end

--- The conflict radar's mark: `⚠ conflicts: 2 files` when the branch no longer merges
--- cleanly into its base, `⚠ shared: 1 file with b` when another live session changes
--- the same files, '' when nothing is flagged (or the host predates the radar).
---@param s canopy.Session
---@return string
function M.radar(s)
  local r = s.radar
  if not present(r) then return '' end
  local function files(list) return ('%d file%s'):format(#list, #list == 1 and '' or 's') end
  if present(r.conflicts) and #r.conflicts > 0 then return '⚠ conflicts: ' .. files(r.conflicts) end
  if present(r.shared_files) and #r.shared_files > 0 then
    local with = present(r.shared_with) and (' with ' .. table.concat(r.shared_with, ', ')) or ''
    return '⚠ shared: ' .. files(r.shared_files) .. with
  end
  return ''
end

--- The non-empty ones of `parts`, joined with `sep`.
---@param parts string[]
---@param sep string
---@return string
function M.join(parts, sep)
  return table.concat(vim.tbl_filter(function(p) return p ~= '' end, parts), sep)
end

--- The dev server's URL (`[run]`), or ''.
---@param s canopy.Session
---@return string
function M.url(s)
  if present(s.env) and present(s.env.url) then return s.env.url end
  return ''
end

return M
