--- `:Canopy review [NAME]`: a session's change in a tab of its own. On the left the
--- changed files with their counts; on the right one file's hunks as plain code lines
--- in that file's filetype (so its syntax, regex or treesitter, applies), each line's
--- origin shown as a sign and a line highlight, each hunk headed by its `@@` line.
--- `c` comments on the line under the cursor (its number in the new version of the
--- file), pending comments show as signs and virtual text, `S` sends them all to the
--- agent as one prompt. Comments live in the host's record of the session, so the
--- marks follow what the host pushes, whoever added or sent them.
local actions = require('canopy.actions')
local compat = require('canopy.compat')
local config = require('canopy.config')
local format = require('canopy.format')
local state = require('canopy.state')

local M = {}
local H = {}

H.ns = vim.api.nvim_create_namespace('canopy_review')
H.ns_comments = vim.api.nvim_create_namespace('canopy_review_comments')

---@class canopy.Review
---@field name string
---@field tab integer the review's tab page
---@field list integer the file list's buffer
---@field list_win integer the file list's window
---@field diff table the host's `Diff` (`base_commit`, `files` with hunks)
---@field file integer|nil index into `diff.files` of the file shown
---@field buf integer|nil the shown file's diff buffer
---@field lines table<integer, table|false> per diff buffer line: its `DiffLine`, false for a hunk header
---@field seen string the pending comments, PR and radar last drawn (to redraw only on a change)

--- Open reviews by session name.
---@type table<string, canopy.Review>
H.reviews = {}
--- The session a review buffer (file list or diff) belongs to.
---@type table<integer, string>
H.by_buf = {}

H.letters = { added = 'A', deleted = 'D', modified = 'M', renamed = 'R', typechange = 'T', untracked = '?' }

---@param msg string
---@param level integer|nil
function H.say(msg, level) vim.notify('canopy: ' .. msg, level or vim.log.levels.INFO) end

--- The session to review when none is named: the one of a review buffer, the one under
--- the sidebar's cursor, else the local one whose worktree holds the current file (or
--- the working directory).
---@return string|nil
function M.default_name()
  local buf = vim.api.nvim_get_current_buf()
  if H.by_buf[buf] then return H.by_buf[buf] end
  local sidebar = require('canopy.sidebar')
  if sidebar.buf() == buf then return sidebar.name_at_cursor() end
  local path = vim.api.nvim_buf_get_name(buf)
  if path == '' or vim.bo[buf].buftype ~= '' then path = vim.fn.getcwd() end
  path = (vim.fn.resolve(vim.fn.fnamemodify(path, ':p')):gsub('/+$', ''))
  local best, best_len = nil, 0
  for _, s in ipairs(state.list()) do
    local local_session = not state.present(s.host) or s.host == 'local'
    local wt = local_session and (vim.fn.resolve(s.worktree):gsub('/+$', '')) or ''
    if wt ~= '' and #wt > best_len and (path == wt or path:sub(1, #wt + 1) == wt .. '/') then
      best, best_len = s.name, #wt
    end
  end
  return best
end

--- Open (or bring forward and refresh) the review of session `name`.
---@param name string|nil nil: see `default_name`
function M.open(name)
  name = name or M.default_name()
  if not name then
    return H.say('no session here: name one (:Canopy review NAME)', vim.log.levels.ERROR)
  end
  local ok, diff = actions.request('diff', { name = name }, 'diff of ' .. name)
  if not ok then return end
  local r = H.review(name)
  if r then
    vim.api.nvim_set_current_tabpage(r.tab)
  else
    r = H.new_tab(name)
    H.reviews[name] = r
  end
  r.diff = diff
  H.render_list(r)
  if #diff.files == 0 then
    H.show(r, nil)
    return H.say(name .. ' has no changes against its base')
  end
  H.show(r, math.min(r.file or 1, #diff.files))
end

---@param name string
---@return canopy.Review
function H.new_tab(name)
  vim.cmd('tabnew')
  local r = { name = name, tab = vim.api.nvim_get_current_tabpage(), lines = {}, seen = '' }
  r.list, r.list_win = vim.api.nvim_get_current_buf(), vim.api.nvim_get_current_win()
  H.scratch(r, r.list, 'canopy-review')
  pcall(vim.api.nvim_buf_set_name, r.list, 'canopy://review/' .. name)
  vim.cmd(('rightbelow vsplit | wincmd p | vertical resize %d'):format(config.options.review.width))
  compat.win_set(r.list_win, 'winfixwidth', true)
  compat.win_set(r.list_win, 'cursorline', true)
  H.listen()
  return r
end

--- Make `buf` a review buffer of `r`: scratch, read-only, with the review keys.
---@param r canopy.Review
---@param buf integer
---@param filetype string|nil
function H.scratch(r, buf, filetype)
  for opt, value in pairs({ buftype = 'nofile', bufhidden = 'wipe', swapfile = false, modifiable = false }) do
    compat.buf_set(buf, opt, value)
  end
  if filetype then compat.buf_set(buf, 'filetype', filetype) end
  H.by_buf[buf] = r.name
  vim.api.nvim_create_autocmd('BufWipeout', { buffer = buf, once = true, callback = function() H.by_buf[buf] = nil end })
  local keys = config.options.review.keys
  local maps = {
    open = buf == r.list and function() H.open_at_cursor(r) end or nil,
    comment = buf ~= r.list and function() M.comment(r.name) end or nil,
    side_by_side = buf ~= r.list and function() H.side_by_side(r) end or nil,
    send = function() M.send(r.name) end,
    reload = function() M.open(r.name) end,
    close = function() M.close(r.name) end,
  }
  for action, fn in pairs(maps) do
    if keys[action] then
      vim.keymap.set('n', keys[action], fn, { buffer = buf, nowait = true, silent = true, desc = 'canopy review: ' .. action })
    end
  end
end

---@param buf integer
---@param lines string[]
function H.set_lines(buf, lines)
  compat.buf_set(buf, 'modifiable', true)
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  compat.buf_set(buf, 'modifiable', false)
end

--- The session's pending comments (from its record, as the host pushed it).
---@param name string
---@return table[]
function H.pending(name)
  local s = state.sessions[name]
  return s and state.present(s.comments) and s.comments or {}
end

--- The file list: a header (counts; pending comments, the PR, the radar's mark), then a
--- line per file.
---@param r canopy.Review
function H.render_list(r)
  local per_file, added, removed = {}, 0, 0
  for _, c in ipairs(H.pending(r.name)) do per_file[c.path] = (per_file[c.path] or 0) + 1 end
  local lines = {}
  for _, f in ipairs(r.diff.files) do
    added, removed = added + f.added, removed + f.removed
    local n = per_file[f.path]
    table.insert(lines, ('%s %s  %s%s'):format(H.letters[f.status] or '?',
      f.binary and 'binary' or ('+%d -%d'):format(f.added, f.removed), f.path, n and ('  ✎%d'):format(n) or ''))
  end
  local s = state.sessions[r.name]
  local extra = s and format.join({ format.comments(s), format.pr(s), format.radar(s) }, '  ') or ''
  table.insert(lines, 1, ('%s  %d files  +%d -%d'):format(r.name, #r.diff.files, added, removed))
  table.insert(lines, 2, extra)
  H.set_lines(r.list, lines)
  vim.api.nvim_buf_clear_namespace(r.list, H.ns, 0, -1)
  compat.highlight(r.list, H.ns, 'CanopyHeader', 0, 0, -1)
  compat.highlight(r.list, H.ns, 'CanopyIssue', 1, 0, -1)
end

--- The list's line of file `i` (1-based; two header lines first).
H.LIST_TOP = 2

---@param r canopy.Review
function H.open_at_cursor(r)
  local i = vim.api.nvim_win_get_cursor(0)[1] - H.LIST_TOP
  if r.diff.files[i] then H.show(r, i) end
end

--- The review's window for diffs (the one that is not the list), made again if closed.
---@param r canopy.Review
---@return integer
function H.diff_win(r)
  for _, w in ipairs(vim.api.nvim_tabpage_list_wins(r.tab)) do
    if w ~= r.list_win then return w end
  end
  vim.api.nvim_set_current_win(r.list_win)
  vim.cmd('rightbelow vsplit')
  return vim.api.nvim_get_current_win()
end

--- Show file `i` of the diff (nil: an empty buffer) in the diff window.
---@param r canopy.Review
---@param i integer|nil
function H.show(r, i)
  r.file = i
  local f = i and r.diff.files[i]
  local lines, info = {}, {}
  for _, h in ipairs(f and f.hunks or {}) do
    table.insert(lines, h.header)
    table.insert(info, false)
    for _, l in ipairs(h.lines) do
      table.insert(lines, l.text)
      table.insert(info, l)
    end
  end
  if f and f.binary then lines = { ('%s: binary file %s'):format(f.path, f.status) } end
  local buf = vim.api.nvim_create_buf(false, true)
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  H.scratch(r, buf, nil)
  local win = H.diff_win(r)
  vim.api.nvim_win_set_buf(win, buf)
  compat.win_set(win, 'signcolumn', 'yes:2')
  r.buf, r.lines = buf, info
  if f then
    pcall(vim.api.nvim_buf_set_name, buf, ('canopy://review/%s/%s'):format(r.name, f.path))
    -- The file's own filetype, as if it were read: its syntax and ftplugin apply.
    if not f.binary and vim.fn.exists('#filetypedetect') == 1 then
      vim.api.nvim_buf_call(buf, function()
        vim.cmd('doautocmd <nomodeline> filetypedetect BufRead ' .. vim.fn.fnameescape(f.path))
      end)
    end
  end
  H.decorate(r)
  H.draw_comments(r)
  if #lines > 1 then vim.api.nvim_win_set_cursor(win, { 2, 0 }) end
  local list_win = vim.fn.bufwinid(r.list)
  if i and list_win ~= -1 then vim.api.nvim_win_set_cursor(list_win, { i + H.LIST_TOP, 0 }) end
end

--- Signs and line highlights for each line's origin; hunk headers highlighted.
---@param r canopy.Review
function H.decorate(r)
  local looks = {
    ['+'] = { sign_text = '+', sign_hl_group = 'CanopyReviewAdd', line_hl_group = 'CanopyReviewAdd' },
    ['-'] = { sign_text = '-', sign_hl_group = 'CanopyReviewDelete', line_hl_group = 'CanopyReviewDelete' },
  }
  for lnum, l in ipairs(r.lines) do
    if l == false then
      compat.highlight(r.buf, H.ns, 'CanopyReviewHunk', lnum - 1, 0, -1)
    elseif looks[l.origin] then
      vim.api.nvim_buf_set_extmark(r.buf, H.ns, lnum - 1, 0, looks[l.origin])
    end
  end
end

--- The pending comments on the file shown, as a sign and virtual text on their line.
---@param r canopy.Review
function H.draw_comments(r)
  local f = r.file and r.diff.files[r.file]
  if not f or not vim.api.nvim_buf_is_valid(r.buf) then return end
  vim.api.nvim_buf_clear_namespace(r.buf, H.ns_comments, 0, -1)
  local at = {}
  for lnum, l in ipairs(r.lines) do
    if l and state.present(l.new) then at[l.new] = lnum end
  end
  for _, c in ipairs(H.pending(r.name)) do
    local lnum = c.path == f.path and at[c.line]
    if lnum then
      vim.api.nvim_buf_set_extmark(r.buf, H.ns_comments, lnum - 1, 0, {
        sign_text = '✎', sign_hl_group = 'CanopyReviewComment',
        virt_text = { { '✎ ' .. (c.text:gsub('\n', ' ')), 'CanopyReviewComment' } },
      })
    end
  end
end

--- Follow the host's pushes: comments added, sent or edited (here or elsewhere) and
--- the PR, redrawn when they change (not on every usage report).
function H.listen()
  if H.listening then return end
  H.listening = true
  state.listen(function(kind)
    if kind ~= 'changed' then return end
    for name, r in pairs(H.reviews) do
      local s = state.sessions[name] or {}
      local seen = vim.inspect({ H.pending(name), s.pr, s.radar })
      if not H.review(name) then
        H.reviews[name] = nil
      elseif seen ~= r.seen then
        r.seen = seen
        H.render_list(r)
        H.draw_comments(r)
      end
    end
  end)
end

--- The open review of `name`: its tab and file list still there.
---@param name string
---@return canopy.Review|nil
function H.review(name)
  local r = H.reviews[name]
  if r and vim.api.nvim_tabpage_is_valid(r.tab) and vim.api.nvim_buf_is_valid(r.list) then return r end
  return nil
end

--- `c`: ask for a comment on the line under the cursor and add it (on the new version
--- of the file: a removed line or a hunk header has no place there).
---@param name string
function M.comment(name)
  local r = H.review(name)
  local f = r and r.file and r.diff.files[r.file]
  if not f or vim.api.nvim_get_current_buf() ~= r.buf then return end
  local l = r.lines[vim.api.nvim_win_get_cursor(0)[1]]
  if not l or not state.present(l.new) then
    return H.say('comment on a line of the new version (not a removed line or a hunk header)', vim.log.levels.WARN)
  end
  local line = l.new
  vim.ui.input({ prompt = ('Comment on %s:%d: '):format(f.path, line) }, function(text)
    text = text and vim.trim(text)
    if not text or text == '' then return end
    actions.request('review_add', { name = name, path = f.path, line = line, text = text },
      'comment on ' .. name)
  end)
end

--- `S`: send every pending comment to the agent as one prompt.
---@param name string
function M.send(name)
  local n = #H.pending(name)
  if n == 0 then return H.say(name .. ' has no pending comments') end
  local ok, res = actions.request('review_send', { name = name }, 'send comments to ' .. name)
  if ok then H.say(('sent %d comment%s to %s'):format(res.sent, res.sent == 1 and '' or 's', name)) end
end

--- `s`: the file shown, beside its base version in diff mode, in a tab of its own.
---@param r canopy.Review
function H.side_by_side(r)
  local f = r.file and r.diff.files[r.file]
  local s = state.sessions[r.name]
  if not f or not s then return end
  local file = s.worktree .. '/' .. f.path
  vim.cmd('tabnew ' .. vim.fn.fnameescape(file))
  require('canopy.diff').open(s.worktree, r.diff.base_commit, file)
end

--- `q`: close the review's tab (or, the last tab, its windows).
---@param name string
function M.close(name)
  local r = H.review(name)
  H.reviews[name] = nil
  if not r then return end
  if #vim.api.nvim_list_tabpages() > 1 then
    vim.cmd(vim.api.nvim_tabpage_get_number(r.tab) .. 'tabclose')
  else
    vim.cmd('enew | only')
  end
end

return M
