"""Scripted workflows over the tools that do not need the agent.

`score`: every case of a folder through the modality tools, via the tool runner (in-process or
Ray), into SQLite, resumable (`mmdx workflow score`). Fusion and distillation workflows will read
its stored embeddings. Evaluation workflows (`workflows/*.yaml`, run by `mmdx eval run`) live in `mmdx.evals.workflow_run`,
since it drives the agent (a layer above tools).
"""
