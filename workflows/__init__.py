"""Scripted workflows over the tools that do not need the agent.

`score`: every case of a folder through the modality tools, via the tool runner (in-process or
Ray), into SQLite, resumable (`mmdx workflow score`). Fusion and distillation workflows will read
its stored embeddings. The resumable evaluation run over the agent lives in `mmdx.evals.eval_run`,
since it drives the agent (a layer above tools).
"""
