import { describe, expect, it } from 'vitest'
import { gpuLines, historyPoints, unixSeconds } from '../../src/lib/history'

describe('history charts', () => {
  it('reads a point time given in unix seconds as that time, not 1970', () => {
    const t = 1_800_000_000 // what /nodes/NAME/history sends
    expect(unixSeconds(t)).toBe(t)
    expect(new Date(unixSeconds(t) * 1000).getUTCFullYear()).toBe(2027)
  })
  it('reads a health sample time in ISO text as unix seconds', () => {
    expect(unixSeconds('2027-01-15T08:00:00Z')).toBe(Date.UTC(2027, 0, 15, 8) / 1000)
    expect(unixSeconds('2027-01-15T08:00:00.5+00:00')).toBe(Date.UTC(2027, 0, 15, 8) / 1000 + 0.5)
    const [p] = historyPoints([{ at: '2027-01-15T08:00:00Z', cpu_percent: 1, memory_used: 1, memory_percent: 1 }])
    expect(unixSeconds(p.t)).toBe(Date.UTC(2027, 0, 15, 8) / 1000)
  })
  it('gives each GPU its util, memory and temperature lines', () => {
    const points = [
      { t: 1, gpus: [{ index: 0, util: 10, memory_used: 20, memory_total: 80, temperature: 40 }] },
      { t: 2, gpus: [{ index: 1, util: 50 }] },
      { t: 3, gpus: [{ index: 0, util: null, memory_used: 40, memory_total: 80, temperature: null }] },
    ]
    expect(gpuLines(points, 0)).toEqual({ util: [10, null, null], memory: [25, null, 50], temperature: [40, null, null] })
    expect(gpuLines(points, 1)).toEqual({ util: [null, 50, null], memory: [null, null, null], temperature: null })
  })
})
