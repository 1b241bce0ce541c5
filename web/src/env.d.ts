/// <reference types="vite/client" />

interface Window {
  /** The terminal page's hook for the browser tests: lose the connection as a network failure would. */
  __kawaTerminal?: { drop: () => void }
}
