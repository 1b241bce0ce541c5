// Keyboard shortcuts: "g" then a letter goes to a page; "/" searches tasks; "?" helps.

const GO: Record<string, string> = { o: '/', n: '/nodes', g: '/gpus', t: '/tasks', v: '/vps', e: '/environments', s: '/submit' }

export interface Shortcut {
  run: string | null
  pending: string
}

/** What a key does after the keys `pending`: { run, pending } (run: a path or a word). */
export function shortcutFor(pending: string, key: string): Shortcut {
  if (pending === 'g') {
    return GO[key] ? { run: GO[key], pending: '' } : { run: null, pending: '' }
  }
  if (key === 'g') return { run: null, pending: 'g' }
  if (key === '/') return { run: 'search', pending: '' }
  if (key === '?') return { run: 'help', pending: '' }
  if (key === 'Escape') return { run: 'close', pending: '' }
  return { run: null, pending: '' }
}
