/**
 * Starts a worker thread running a module given by URL. Built code runs the compiled .js as
 * is. Running from TypeScript sources (tests, benchmarks, `--import tsx`), Node 20 does not
 * apply the loader to a worker's entry, so the worker registers tsx (a dev dependency, present
 * wherever .ts files run) before importing the module.
 */
import { Worker } from 'node:worker_threads';

export function startModuleWorker(moduleUrl: string | URL, workerData: unknown): Worker {
  const href = moduleUrl.toString();
  if (!href.endsWith('.ts')) return new Worker(new URL(href), { workerData });
  const tsxApi = import.meta.resolve('tsx/esm/api');
  const entry = `import(${JSON.stringify(tsxApi)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(href)}); })`;
  return new Worker(entry, { eval: true, workerData });
}
