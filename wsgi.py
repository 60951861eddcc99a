"""WSGI entry point: `gunicorn wsgi:app`; also what `flask` finds with no --app."""

from dotenv import load_dotenv

from todo_service import create_app

load_dotenv()  # a .env file works too; the real environment wins
app = create_app()
