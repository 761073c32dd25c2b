--- A small read-only floating window, closed with q or <Esc>.
local compat = require('canopy.compat')

local M = {}

---@param lines string[]
---@param filetype string
---@return integer buf, integer win
function M.show(lines, filetype)
  local buf = vim.api.nvim_create_buf(false, true)
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  compat.buf_set(buf, 'modifiable', false)
  compat.buf_set(buf, 'bufhidden', 'wipe')
  compat.buf_set(buf, 'filetype', filetype)
  local width = 20
  for _, l in ipairs(lines) do width = math.max(width, vim.fn.strdisplaywidth(l) + 2) end
  width = math.min(width, math.max(20, vim.o.columns - 4))
  local height = math.min(#lines, math.max(1, vim.o.lines - 4))
  -- No `title`: Neovim 0.7 rejects it; the first line serves as one.
  local win = vim.api.nvim_open_win(buf, true, {
    relative = 'editor', style = 'minimal', border = 'rounded',
    width = width, height = height,
    row = math.floor((vim.o.lines - height) / 2) - 1, col = math.floor((vim.o.columns - width) / 2),
  })
  for _, lhs in ipairs({ 'q', '<Esc>' }) do
    vim.keymap.set('n', lhs, function()
      if vim.api.nvim_win_is_valid(win) then vim.api.nvim_win_close(win, true) end
    end, { buffer = buf, nowait = true, silent = true })
  end
  return buf, win
end

return M
