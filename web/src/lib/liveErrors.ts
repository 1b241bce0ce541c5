// A form's errors as the user types. A field's error shows once the field has been
// edited, or after a submit attempt; a new error waits for a short pause in typing, a
// fixed one goes at once. The API's errors stay next to their fields until edited.
import { computed, onBeforeUnmount, reactive, ref, watch } from 'vue'

export const PAUSE_MS = 250

function snapshot(form) {
  return Object.fromEntries(Object.entries(form).map(([k, v]) => [k, JSON.stringify(v)]))
}

/** The keys of `form` whose values differ from `before` (a snapshot). */
export function changedFields(before, form) {
  const now = snapshot(form)
  return Object.keys(now).filter((k) => now[k] !== before[k])
}

/** `form`: a ref of the form's fields; `check(form)`: its errors by field. */
export function useLiveErrors(form, check, pause = PAUSE_MS) {
  const edited = reactive(new Set())
  const attempted = ref(false)
  const found = ref({})
  const answered = ref({})
  let before = snapshot(form.value)
  let timer = null

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
    const out = { ...answered.value }
    for (const [k, message] of Object.entries(found.value)) {
      if (attempted.value || edited.has(k)) out[k] = message
    }
    return out
  })
  /** A submit attempt: every field's errors (`found`) show now; the API's earlier ones go. */
  function attempt(all) {
    clearTimeout(timer)
    attempted.value = true
    found.value = all
    answered.value = {}
  }
  /** The API's errors by field, shown until their field is edited. */
  function answer(byField) {
    answered.value = { ...byField }
  }
  return { errors, attempt, answer }
}
