// A form's errors as the user types. A field's error shows once the field has been
// edited, or after a submit attempt; a new error waits for a short pause in typing, a
// fixed one goes at once. The API's errors stay next to their fields until edited.
import { type Ref, computed, onBeforeUnmount, reactive, ref, watch } from 'vue'
import type { FieldErrors } from './submitBody'

export const PAUSE_MS = 250

type Snapshot = Record<string, string>

function snapshot(form: object): Snapshot {
  return Object.fromEntries(Object.entries(form).map(([k, v]) => [k, JSON.stringify(v)]))
}

/** The keys of `form` whose values differ from `before` (a snapshot). */
export function changedFields(before: Snapshot, form: object): string[] {
  const now = snapshot(form)
  return Object.keys(now).filter((k) => now[k] !== before[k])
}

/** `form`: a ref of the form's fields; `check(form)`: its errors by field. */
export function useLiveErrors<F extends object>(form: Ref<F>, check: (form: F) => FieldErrors, pause: number = PAUSE_MS) {
  const edited = reactive(new Set<string>())
  const attempted = ref(false)
  const found = ref<FieldErrors>({})
  const answered = ref<FieldErrors>({})
  let before = snapshot(form.value)
  let timer: ReturnType<typeof setTimeout> | undefined

  watch(
    form,
    (now) => {
      for (const k of changedFields(before, now)) {
        edited.add(k)
        delete answered.value[k]
      }
      before = snapshot(now)
      const fresh = check(now)
      found.value = Object.fromEntries(Object.entries(fresh).filter(([k]) => k in found.value))
      clearTimeout(timer)
      timer = setTimeout(() => (found.value = fresh), pause)
    },
    { deep: true },
  )
  onBeforeUnmount(() => clearTimeout(timer))

  const errors = computed(() => {
    const out: FieldErrors = { ...answered.value }
    for (const [k, message] of Object.entries(found.value)) {
      if (attempted.value || edited.has(k)) out[k] = message
    }
    return out
  })
  /** A submit attempt: every field's errors (`found`) show now; the API's earlier ones go. */
  function attempt(all: FieldErrors): void {
    clearTimeout(timer)
    attempted.value = true
    found.value = all
    answered.value = {}
  }
  /** The API's errors by field, shown until their field is edited. */
  function answer(byField: FieldErrors): void {
    answered.value = { ...byField }
  }
  return { errors, attempt, answer }
}
