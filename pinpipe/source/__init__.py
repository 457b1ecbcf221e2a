"""The source stage: the source database (database.py), synthetic rows (synthetic.py), loading real files
(load.py) and the emulator that plays users posting (emulator.py, sending through sender.py)."""
