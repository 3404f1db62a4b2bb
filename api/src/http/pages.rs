//! The few HTML pages the server serves itself: `/device`, where a person approves the
//! sign-in of a CLI (RFC 8628 verification URI). The page talks to the JSON API with
//! same-origin `fetch`, so the session cookie and the CSRF origin check apply.

use poem::web::Html;
use poem::{IntoResponse, handler};

const DEVICE_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>FunMagic — approve a device</title>
<style>body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem}
input,button{font-size:1rem;padding:.5rem;margin:.25rem 0;width:100%;box-sizing:border-box}
.code{font-family:monospace;letter-spacing:.2em;text-transform:uppercase}
#msg{margin-top:1rem;font-weight:600}</style></head>
<body><h1>Sign in a device</h1>
<section id="signin" hidden><p>Sign in to FunMagic first.</p>
<form id="signin-form"><input name="email" type="email" placeholder="Email" required autocomplete="username">
<input name="password" type="password" placeholder="Password" required autocomplete="current-password">
<button>Sign in</button></form></section>
<section id="approve" hidden><p>Signed in as <b id="who"></b>. Enter the code your terminal shows:</p>
<form id="approve-form"><input id="code" class="code" name="code" placeholder="ABCD-EFGH" required maxlength="9">
<button name="decision" value="approve">Approve</button><button name="decision" value="deny" type="button" id="deny">Deny</button></form></section>
<p id="msg" role="status"></p>
<script>
const $=s=>document.querySelector(s);const msg=t=>$('#msg').textContent=t;
const code=new URLSearchParams(location.search).get('user_code');if(code)$('#code').value=code;
async function api(path,opts={}){const r=await fetch(path,{credentials:'same-origin',headers:{'content-type':'application/json'},...opts});
 const body=await r.json().catch(()=>({}));if(!r.ok)throw new Error(body.error||('HTTP '+r.status));return body}
async function load(){try{const s=await api('/api/auth/get-session');$('#who').textContent=s.user.email;$('#approve').hidden=false;$('#signin').hidden=true}
 catch(e){$('#signin').hidden=false;$('#approve').hidden=true}}
$('#signin-form').onsubmit=async e=>{e.preventDefault();const f=new FormData(e.target);
 try{await api('/api/auth/sign-in/email',{method:'POST',body:JSON.stringify({email:f.get('email'),password:f.get('password')})});msg('');load()}catch(err){msg(err.message)}};
async function decide(approve){try{const r=await api('/api/auth/device/approve',{method:'POST',body:JSON.stringify({userCode:$('#code').value,approve})});
 msg(approve?('Approved '+r.clientName+'. You can close this page and return to your terminal.'):'Denied.')}catch(err){msg(err.message)}}
$('#approve-form').onsubmit=e=>{e.preventDefault();decide(true)};$('#deny').onclick=()=>decide(false);load();
</script></body></html>"#;

/// `GET /device`.
#[handler]
pub fn device_page() -> impl IntoResponse {
    Html(DEVICE_PAGE)
}
