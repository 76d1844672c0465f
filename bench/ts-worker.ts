/**
 * Starts a worker thread running a TypeScript module. Node 20 does not apply `--import tsx`
 * to a worker's entry, so the worker registers tsx itself before importing the module.
 */
import { Worker } from 'node:worker_threads';

export function startTsWorker(moduleUrl: string, workerData: unknown): Worker {
  const tsxApi = import.meta.resolve('tsx/esm/api');
  const entry = `import(${JSON.stringify(tsxApi)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(moduleUrl)}); })`;
  return new Worker(entry, { eval: true, workerData });
}
