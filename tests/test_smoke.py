from tests.helpers import assert_error


def test_register_login_and_create(client, user, headers):
    response = client.post("/api/me/tasks", json={"title": "Buy milk"}, headers=headers)
    assert response.status_code == 201
    assert response.json["user_id"] == user.id


def test_unknown_route_is_json_404(client):
    assert_error(client.get("/nope", off_document="an unknown route"), 404)
