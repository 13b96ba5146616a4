from imgrec.cli import run

run()
