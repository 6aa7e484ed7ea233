"""The emergency-department presentation generator: synthetic adult ED cases calibrated to published
diagnostic accuracy (data/ed/sources.py), drawn by data/ed/generate.py from data/ed/parameters.py,
written as notes by data/ed/notes.py and turned into PatientCase files by data/ed/build.py."""
