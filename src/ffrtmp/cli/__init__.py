"""The ``ffrtmp`` command: ``entry`` dispatches to the daemons, the wrapper and the operator commands.

``context`` holds what every command runs with (its ``Env``, ``CliError``, ``ExitStatus``);
``connection`` builds the operator's settings and talks to the master; ``render`` turns the
API's answers into text; ``commands`` declares the operator commands.
"""
