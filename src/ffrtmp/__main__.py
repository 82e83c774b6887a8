from ffrtmp.cli.main import run

run()
