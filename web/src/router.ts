import { createRouter, createWebHistory } from 'vue-router'
import { useSession } from './stores/session'
import LoginView from './views/LoginView.vue'
import OverviewView from './views/OverviewView.vue'

export const routes = [
  { path: '/login', name: 'login', component: LoginView, meta: { public: true } },
  { path: '/', name: 'overview', component: OverviewView },
  { path: '/nodes', name: 'nodes', component: () => import('./views/NodesView.vue') },
  { path: '/gpus', name: 'gpus', component: () => import('./views/GpusView.vue') },
  { path: '/tasks', name: 'tasks', component: () => import('./views/TasksView.vue') },
  { path: '/tasks/:id', name: 'task', component: () => import('./views/TaskView.vue'), props: true },
  { path: '/submit', name: 'submit', component: () => import('./views/SubmitView.vue') },
  { path: '/vps', name: 'vps', component: () => import('./views/VpsView.vue') },
  {
    path: '/terminal/:kind(tasks|environments)/:id',
    name: 'terminal',
    component: () => import('./views/TerminalView.vue'),
    props: true,
  },
  { path: '/environments', name: 'environments', component: () => import('./views/EnvironmentsView.vue') },
  { path: '/:rest(.*)*', name: 'missing', component: () => import('./views/MissingView.vue') },
]

export function makeRouter(history = createWebHistory()) {
  const router = createRouter({ history, routes })
  router.beforeEach(async (to) => {
    const session = useSession()
    if (to.meta.public) return true
    if (!session.token) return { name: 'login', query: { next: to.fullPath } }
    if (!session.role) {
      try {
        await session.identify()
      } catch {
        session.logout(session.expired || 'could not check the token with the host')
        return { name: 'login', query: { next: to.fullPath } }
      }
    }
    return true
  })
  return router
}
