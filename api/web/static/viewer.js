// The 3D viewer (three.js, vendored under vendor/three, served by us): a GLB model or a
// PLY point cloud, framed to fit, orbit with the mouse or a finger, zoom with the wheel or a
// pinch, arrow keys to turn when focused. Loaded only on pages that show a model.

import * as THREE from './vendor/three/three.module.min.js';
import { OrbitControls } from './vendor/three/OrbitControls.js';
import { GLTFLoader } from './vendor/three/GLTFLoader.js';
import { PLYLoader } from './vendor/three/PLYLoader.js';

function frame(camera, controls, object) {
  const box = new THREE.Box3().setFromObject(object);
  const size = box.getSize(new THREE.Vector3()).length() || 1;
  const center = box.getCenter(new THREE.Vector3());
  object.position.sub(center);
  camera.near = size / 100;
  camera.far = size * 100;
  camera.position.set(0, size * 0.15, size * 1.1);
  camera.updateProjectionMatrix();
  controls.target.set(0, 0, 0);
  controls.maxDistance = size * 10;
  controls.update();
}

/** Draws `url` (`kind`: 'glb' or 'ply') into `holder`; resolves once it is on screen. */
export async function show(holder, url, kind) {
  const renderer = new THREE.WebGLRenderer({ antialias: true, alpha: true, preserveDrawingBuffer: true });
  renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2));
  renderer.outputColorSpace = THREE.SRGBColorSpace;
  const canvas = renderer.domElement;
  canvas.tabIndex = 0;
  holder.replaceChildren(canvas);
  const scene = new THREE.Scene();
  scene.add(new THREE.HemisphereLight(0xffffff, 0x445566, 2.2));
  const sun = new THREE.DirectionalLight(0xffffff, 1.6);
  sun.position.set(2, 3, 4);
  scene.add(sun);
  const camera = new THREE.PerspectiveCamera(45, 1, 0.01, 100);
  const controls = new OrbitControls(camera, canvas);
  controls.enableDamping = true;
  controls.listenToKeyEvents(canvas);

  let object;
  if (kind === 'ply') {
    const geometry = await new PLYLoader().loadAsync(url);
    const material = new THREE.PointsMaterial({ size: 0.01, vertexColors: geometry.hasAttribute('color') });
    if (!geometry.hasAttribute('color')) material.color = new THREE.Color(0x8b5cf6);
    geometry.computeBoundingSphere();
    material.size = (geometry.boundingSphere?.radius || 1) / 150;
    object = new THREE.Points(geometry, material);
  } else {
    const gltf = await new GLTFLoader().loadAsync(url);
    object = gltf.scene;
  }
  scene.add(object);
  frame(camera, controls, object);

  const resize = () => {
    const w = holder.clientWidth || 320;
    const h = Math.max(240, Math.round(w * 0.75));
    renderer.setSize(w, h, false);
    canvas.style.width = '100%';
    canvas.style.height = `${h}px`;
    camera.aspect = w / h;
    camera.updateProjectionMatrix();
  };
  new ResizeObserver(resize).observe(holder);
  resize();
  renderer.setAnimationLoop(() => {
    controls.update();
    renderer.render(scene, camera);
  });
  holder.dataset.ready = 'true';
  return { renderer, scene, camera };
}
