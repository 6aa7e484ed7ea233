"""Scripted workflows over the tools (training/distillation pipelines, batch scoring) that do not
need the agent. Empty so far: the fusion and distillation issues add them. The resumable evaluation
run over the agent lives in `mmdx.evals.eval_run`, since it drives the agent (a layer above tools)."""
