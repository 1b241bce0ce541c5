import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'

// The build goes into the Python package, where the host serves it (kawa.host.dashboard).
const outDir = fileURLToPath(new URL('../src/kawa/web/dist', import.meta.url))

export default defineConfig({
  plugins: [vue()],
  base: '/',
  build: {
    outDir,
    emptyOutDir: true,
    target: 'es2020',
    chunkSizeWarningLimit: 600,
  },
  server: {
    proxy: { '/api': { target: 'http://127.0.0.1:8420', ws: true } },
  },
  test: {
    environment: 'jsdom',
    include: ['tests/unit/**/*.test.{js,ts}'],
  },
})
