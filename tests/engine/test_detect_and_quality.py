import cv2
import numpy as np
import pytest

import face_engine as fe
from face_engine.cli import load_image

from .conftest import single_face_photos


@pytest.mark.parametrize(
    ("name", "count"),
    [("two_people.jpg", 2), ("kit_with_rose.jpg", 2), ("obama_and_biden.jpg", 3)],
)
def test_group_photos_give_the_right_face_count(faces_dir, name, count):
    image = load_image(faces_dir / "group" / name)
    faces = fe.detect(image)
    assert len(faces) == count
    assert fe.quality(image, faces).codes[0] == "multiple_faces"
    assert fe.quality(image, faces).issues[0].hint == "only one face please"


def test_every_single_face_photo_has_a_face_sorted_largest_first(faces_dir):
    for path in single_face_photos(faces_dir):
        faces = fe.detect(load_image(path))
        assert faces, path
        areas = [face.box.width * face.box.height for face in faces]
        assert areas == sorted(areas, reverse=True)
        assert faces[0].score > 0.8
        assert faces[0].keypoints.shape == (5, 2)


def test_a_blank_image_has_no_face():
    blank = np.full((480, 640, 3), 128, np.uint8)
    assert fe.detect(blank) == []
    analysis = fe.analyze(blank)
    assert analysis.face is None and analysis.landmarks is None
    assert analysis.quality.codes == ["no_face"]
    assert analysis.hint == fe.HINTS["no_face"]


def test_landmarks_give_open_eyes_and_frontal_pose(obama):
    face = fe.detect(obama)[0]
    marks = fe.landmarks(obama, face)
    assert marks.points.shape == (68, 2)
    # Landmarks sit inside the detected box (with a small margin).
    box = face.box
    assert (marks.points[:, 0] > box.x - 0.1 * box.width).all()
    assert (marks.points[:, 0] < box.x + 1.1 * box.width).all()
    assert 0.18 < marks.ear < 0.4
    assert abs(marks.pose.yaw) < 10 and abs(marks.pose.pitch) < 20 and abs(marks.pose.roll) < 10


def test_pose_sees_a_turned_head(faces_dir):
    image = load_image(faces_dir / "kit_harington" / "john1.jpeg")
    marks = fe.landmarks(image, fe.detect(image)[0])
    assert abs(marks.pose.yaw) > 20
    mirrored = cv2.flip(image, 1)
    mirrored_marks = fe.landmarks(mirrored, fe.detect(mirrored)[0])
    # A mirrored image turns the other way by about as much.
    assert np.sign(mirrored_marks.pose.yaw) == -np.sign(marks.pose.yaw)
    assert abs(abs(mirrored_marks.pose.yaw) - abs(marks.pose.yaw)) < 8


def test_a_good_frontal_photo_passes_quality(obama):
    faces = fe.detect(obama)
    verdict = fe.quality(obama, faces, fe.landmarks(obama, faces[0]))
    assert verdict.ok, verdict.codes
    assert verdict.as_dict() == {"ok": True, "issues": []}


@pytest.mark.parametrize(
    ("change", "code", "hint"),
    [
        (lambda image: (image * 0.12).astype(np.uint8), "too_dark", "find better lighting"),
        (lambda image: cv2.add(image, np.full_like(image, 150)), "too_bright", None),
        (lambda image: cv2.GaussianBlur(image, (0, 0), 6), "blurry", "hold still"),
        (lambda image: cv2.resize(image, None, fx=0.2, fy=0.2), "too_small", "move closer"),
    ],
)
def test_quality_names_what_is_wrong(obama, change, code, hint):
    image = change(obama)
    faces = fe.detect(image)
    assert faces, "the face must still be found for the quality check to speak"
    verdict = fe.quality(image, faces)
    assert code in verdict.codes, verdict.metrics
    assert not verdict.ok
    if hint:
        assert hint in [issue.hint for issue in verdict.issues]


@pytest.mark.parametrize("name", ["obama_partial_face.jpg", "obama_partial_face2.jpg"])
def test_partly_cut_faces_are_partially_visible(faces_dir, name):
    image = load_image(faces_dir / "edge" / name)
    assert "partially_visible" in fe.quality(image, fe.detect(image)).codes


def test_a_face_cut_by_the_frame_edge_is_partially_visible(obama):
    face = fe.detect(obama)[0]
    cut = obama[:, face.box.x + face.box.width // 3:]
    assert "partially_visible" in fe.quality(cut, fe.detect(cut)).codes


def test_a_turned_face_is_not_frontal(faces_dir):
    image = load_image(faces_dir / "kit_harington" / "john1.jpeg")
    faces = fe.detect(image)
    verdict = fe.quality(image, faces, fe.landmarks(image, faces[0]))
    assert "not_frontal" in verdict.codes
    assert "look straight at the camera" in [issue.hint for issue in verdict.issues]
