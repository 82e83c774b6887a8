"""The ``ffrtmp`` command: ``main`` dispatches to the daemons, the wrapper and the operator commands.

``context`` holds what every command runs with (its ``Env``, ``CliError``, ``ExitStatus``);
``connection`` builds the operator's settings and talks to the master; ``render`` turns the
API's answers into text; ``submit`` builds a job spec; ``commands`` declares the operator
commands. Nothing here imports ``main``, so the package has no loop.
"""
