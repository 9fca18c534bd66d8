from yuqing.cli import app

app()
