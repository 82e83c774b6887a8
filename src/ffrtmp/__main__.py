from ffrtmp.cli import run

run()
