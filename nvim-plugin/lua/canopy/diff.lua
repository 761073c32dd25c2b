--- A session's changes against its base: the changed files in the quickfix list, each
--- opened as a vertical diff against the base version.
local compat = require('canopy.compat')

local M = {}

--- Quickfix contexts by list id, for opening entries as diffs.
---@type table<string, { worktree: string, base: string }>
M.lists = {}

---@param args string[]
---@return string[] lines, boolean ok
local function git(args)
  local out = vim.fn.systemlist(args)
  return out, vim.v.shell_error == 0
end

--- Changed files of a worktree against `base`: tracked changes, then untracked files.
---@param worktree string
---@param base string
---@return { status: string, path: string }[]|nil, string|nil err
function M.changes(worktree, base)
  local out, ok = git({ 'git', '-C', worktree, 'diff', '--name-status', base })
  if not ok then return nil, table.concat(out, '\n') end
  local items = {}
  for _, line in ipairs(out) do
    local parts = vim.split(line, '\t', { plain = true })
    -- Renames and copies list old and new path; the new one is what exists.
    if #parts >= 2 then table.insert(items, { status = parts[1]:sub(1, 1), path = parts[#parts] }) end
  end
  local untracked = git({ 'git', '-C', worktree, 'ls-files', '--others', '--exclude-standard' })
  for _, path in ipairs(untracked) do
    if path ~= '' then table.insert(items, { status = '?', path = path }) end
  end
  return items
end

---@param s canopy.Session
function M.quickfix(s)
  local changes, err = M.changes(s.worktree, s.base_commit)
  if not changes then
    vim.notify('canopy: diff failed: ' .. tostring(err), vim.log.levels.ERROR)
    return
  end
  local labels = { M = 'modified', A = 'added', D = 'deleted', R = 'renamed', C = 'copied', T = 'type changed', ['?'] = 'untracked' }
  local items = {}
  for _, c in ipairs(changes) do
    table.insert(items, { filename = s.worktree .. '/' .. c.path, lnum = 1, text = labels[c.status] or c.status })
  end
  local title = 'canopy diff ' .. s.name
  vim.fn.setqflist({}, ' ', { title = title, items = items })
  M.lists[title] = { worktree = s.worktree, base = s.base_commit }
  vim.cmd('copen')
  -- <CR> in this list opens the entry as a diff; other lists keep their usual <CR>.
  vim.keymap.set('n', '<CR>', M.open_entry, { buffer = vim.api.nvim_get_current_buf(), silent = true })
  if #items == 0 then vim.notify('canopy: ' .. s.name .. ' has no changes against its base') end
end

--- Open the quickfix entry under the cursor beside the base version, in diff mode.
function M.open_entry()
  local info = vim.fn.getqflist({ title = 0, items = 0 })
  local ctx = M.lists[info.title]
  local idx = vim.api.nvim_win_get_cursor(0)[1]
  if not ctx then return vim.cmd('.cc') end
  vim.cmd(idx .. 'cc')
  M.open(ctx.worktree, ctx.base, vim.api.nvim_buf_get_name(0))
end

--- Show `file` (in `worktree`) against its version at `base`.
---@param worktree string
---@param base string
---@param file string
function M.open(worktree, base, file)
  local rel = file:sub(#worktree + 2)
  vim.cmd('diffoff!')
  vim.cmd('diffthis')
  local old, ok = git({ 'git', '-C', worktree, 'show', base .. ':' .. rel })
  if not ok then old = {} end -- added or untracked: the base has no such file
  local ft = vim.bo.filetype
  vim.cmd('leftabove vnew')
  local buf = vim.api.nvim_get_current_buf()
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, old)
  for opt, value in pairs({ buftype = 'nofile', bufhidden = 'wipe', swapfile = false, modifiable = false, filetype = ft }) do
    compat.buf_set(buf, opt, value)
  end
  pcall(vim.api.nvim_buf_set_name, buf, ('canopy://%s/%s'):format(base:sub(1, 12), rel))
  vim.cmd('diffthis')
  vim.cmd('wincmd p')
end

return M
