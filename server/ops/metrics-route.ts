/** GET /metrics: the Prometheus exposition of an OpsMetrics registry. Mount it where only the scraper reaches (see docs/OPERATIONS.md). */
import { Router } from 'express';
import type { OpsMetrics } from './metrics.js';

export function metricsRouter(metrics: OpsMetrics): Router {
  const router = Router();
  router.get('/metrics', (_req, res, next) => {
    metrics.exposition().then(({ contentType, text }) => {
      res.setHeader('Cache-Control', 'no-store');
      res.type(contentType).send(text);
    }, next);
  });
  return router;
}
