from kwsos.cli import app

app(prog_name="kwsos")
